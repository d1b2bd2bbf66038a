#!/usr/bin/env bash
# Submit one scheduled unlearning pass (`unlearn schedule run`) to a Ray cluster as a Ray job, and map the outcome
# to an exit code cron / a monitor can act on. Ray has no scheduler of its own: cron (this), systemd timers,
# Airflow or a KubeRay RayCronJob (deploy/kuberay/raycronjob.yaml) start the runs. See docs/ledger.md.
#
# Exit codes (the first five are `unlearn schedule run`'s own, read from the job's status):
#   0   done, or nothing to do              1   the batch failed verification (retried next run)
#   2   user error (bad config, tampered checkpoint, no current model), or a bad setting of this script
#   3   ESCALATION: requests failed --escalate-after batches; runs $UNLEARN_ALERT_CMD if set
#   75  another run holds the ledger lock, or took it over from this one: nothing (more) was done by this run
#   69  the job server cannot be reached (before submitting, or lost during the run: outcome unknown; the next
#       run resumes the batch)
#   77  the job server refused the auth token (HTTP 401/403): wrong or missing token
#   70  the job failed without an exit code of the entrypoint (runtime env setup failed, job stopped, node lost)
#
# Security (docs/cluster.md "Security"): the cluster runs with Ray token authentication and its job server listens
# on the head node's 127.0.0.1 only. Run this script on the head node, or through an SSH tunnel to it
# (`ray dashboard cluster.yaml`, or `ssh -N -L 8265:127.0.0.1:8265 ubuntu@HEAD`). The token is sent on every
# request (RAY_AUTH_MODE=token): RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token.
# Plain http:// to anything but this machine would send the token in the clear: refused unless
# UNLEARN_ALLOW_PLAINTEXT_HTTP=1 (only on a private network you trust; prefer a tunnel or an https:// proxy).
#
# Settings (environment; defaults in brackets):
#   RAY_ADDRESS          job server of the cluster [http://127.0.0.1:8265]
#   RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH   the cluster's auth token [~/.ray/auth_token]
#   UNLEARN_REPO         checkout packaged as the job's working dir [the repository this script is in]
#   UNLEARN_LEDGER       ABSOLUTE path of the ledger on the head node [/var/lib/unlearn/ledger.sqlite].
#                        The job runs in a temporary copy of the working dir: a relative path would be lost.
#   UNLEARN_STORAGE      Ray Train storage for resumable runs, shared by all nodes [s3://CHANGE-ME/unlearn/ray_runs]
#   UNLEARN_ARGS         extra `schedule run` flags [--min-batch 100 --max-age 24 --config best.yaml --workers 2]
#   UNLEARN_ALERT_CMD    command run on escalation, given the message on stdin (e.g. a pager webhook) []
#   UNLEARN_ACTOR        who the ledger's events name as the actor [$USER@$(hostname) of this machine]
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RAY_ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"
UNLEARN_REPO="${UNLEARN_REPO:-$(cd "$here/../.." && pwd)}"
UNLEARN_LEDGER="${UNLEARN_LEDGER:-/var/lib/unlearn/ledger.sqlite}"
UNLEARN_STORAGE="${UNLEARN_STORAGE:-s3://CHANGE-ME/unlearn/ray_runs}"
UNLEARN_ARGS="${UNLEARN_ARGS:---min-batch 100 --max-age 24 --config best.yaml --workers 2}"

EXIT_UNREACHABLE=69 EXIT_NO_EXIT_CODE=70 EXIT_LOCKED=75 EXIT_AUTH=77
UNLEARN_ACTOR="${UNLEARN_ACTOR:-${USER:-$(id -un)}@$(hostname)}"

case "$UNLEARN_LEDGER" in
  /*) ;;
  *) echo "error: UNLEARN_LEDGER must be an absolute path on the head node, got $UNLEARN_LEDGER" >&2; exit 2 ;;
esac

# Token authentication: the client sends the token only in token mode.
export RAY_AUTH_MODE=token
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "$token_file" ]; then
  echo "error: no Ray auth token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or copy the cluster's token to" \
       "$token_file (docs/cluster.md, Security)" >&2
  exit 2
fi
case "$RAY_ADDRESS" in
  https://*|http://127.0.0.1|http://127.0.0.1:*|http://localhost|http://localhost:*|http://\[::1\]*) ;;
  http://*)
    if [ "${UNLEARN_ALLOW_PLAINTEXT_HTTP:-0}" != 1 ]; then
      echo "error: RAY_ADDRESS $RAY_ADDRESS is plain HTTP to another machine: the auth token would cross the" \
           "network in the clear. Use an SSH tunnel (http://127.0.0.1:8265) or https://, or set" \
           "UNLEARN_ALLOW_PLAINTEXT_HTTP=1 on a private network you trust" >&2
      exit 2
    fi ;;
  *) echo "error: RAY_ADDRESS must be an http:// or https:// job server address, got $RAY_ADDRESS" >&2; exit 2 ;;
esac

cd "$UNLEARN_REPO" || exit 2

# Is the job server there, and does it accept the token? (distinct exit codes: a monitor tells them apart)
if ! probe="$(ray job list --address "$RAY_ADDRESS" 2>&1 >/dev/null)"; then
  if grep -qiE "401|403|unauthori[sz]ed|forbidden|authentication" <<<"$probe"; then
    echo "error: the job server at $RAY_ADDRESS refused the auth token: $(tail -1 <<<"$probe")" >&2
    exit "$EXIT_AUTH"
  fi
  echo "error: cannot reach the job server at $RAY_ADDRESS: $(tail -1 <<<"$probe")" >&2
  exit "$EXIT_UNREACHABLE"
fi

submission_id="unlearn-schedule-$(date -u +%Y%m%dT%H%M%SZ)"
echo "$(date -u +%FT%TZ) submitting $submission_id to $RAY_ADDRESS"

# `python -m orchestrator` (= `unlearn`) runs the code of the submitted checkout; its dependencies must be installed
# on the nodes (cluster.yaml setup_commands). UNLEARN_ARGS is a list of flags, hence unquoted.
# shellcheck disable=SC2086
ray job submit --address "$RAY_ADDRESS" --submission-id "$submission_id" --working-dir . \
  --runtime-env-json "{\"env_vars\": {\"UNLEARN_LEDGER\": \"$UNLEARN_LEDGER\", \"UNLEARN_ACTOR\": \"$UNLEARN_ACTOR\"}}" \
  -- python -m orchestrator schedule run --storage "$UNLEARN_STORAGE" $UNLEARN_ARGS
rc=$?

if [ "$rc" -ne 0 ]; then
  # `ray job submit` exits 1 for any failed job; the entrypoint's own exit code is in the job's status message
  # ("Job entrypoint command failed with exit code N, ..."), its messages in the job's log.
  if ! status="$(ray job status --address "$RAY_ADDRESS" "$submission_id" 2>&1)"; then
    echo "error: lost the job server at $RAY_ADDRESS during $submission_id; its outcome is unknown (the next run" \
         "resumes the batch): $(tail -1 <<<"$status")" >&2
    rc=$EXIT_UNREACHABLE
  else
    code="$(grep -m1 -oE "failed with exit code [0-9]+" <<<"$status" | grep -oE "[0-9]+$")"
    log="$(ray job logs --address "$RAY_ADDRESS" "$submission_id" 2>/dev/null)"
    if [ -n "$code" ]; then
      case "$code" in 1|2|3|"$EXIT_LOCKED") rc=$code ;; *) rc=$EXIT_NO_EXIT_CODE ;; esac
    elif grep -q "ESCALATION:" <<<"$log"; then rc=3            # older Ray: no exit code in the status
    elif grep -qE "holds the scheduler lock|lock was taken over|could not renew the" <<<"$log"; then rc=$EXIT_LOCKED
    elif grep -q "failed, nothing promoted" <<<"$log"; then rc=1
    elif grep -q "^error: " <<<"$log"; then rc=2
    else rc=$EXIT_NO_EXIT_CODE
    fi
    if [ "$rc" -eq 3 ] && [ -n "${UNLEARN_ALERT_CMD:-}" ]; then
      grep "ESCALATION:" <<<"$log" | sh -c "$UNLEARN_ALERT_CMD"
    fi
  fi
fi
echo "$(date -u +%FT%TZ) $submission_id finished with exit code $rc"
exit "$rc"
