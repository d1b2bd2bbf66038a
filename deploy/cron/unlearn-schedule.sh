#!/usr/bin/env bash
# Submit one scheduled unlearning pass (`unlearn schedule run`) to a Ray cluster as a Ray job, and map the outcome
# to an exit code cron / a monitor can act on. Ray has no scheduler of its own: cron (this), systemd timers,
# Airflow or a KubeRay RayCronJob (deploy/kuberay/raycronjob.yaml) start the runs. See docs/ledger.md.
#
#   exit 0  done, or nothing to do          exit 1  the batch failed verification (retried next run)
#   exit 2  user error (bad config, tampered checkpoint, no current model)
#   exit 3  ESCALATION: requests failed --escalate-after batches; runs $UNLEARN_ALERT_CMD if set
#   exit 75 another run holds the ledger lock (a previous run is still going): nothing was done
#
# Settings (environment; defaults in brackets):
#   RAY_ADDRESS          job server of the cluster [http://127.0.0.1:8265]
#   UNLEARN_REPO         checkout packaged as the job's working dir [the repository this script is in]
#   UNLEARN_LEDGER       ABSOLUTE path of the ledger on the head node [/var/lib/unlearn/ledger.sqlite].
#                        The job runs in a temporary copy of the working dir: a relative path would be lost.
#   UNLEARN_STORAGE      Ray Train storage for resumable runs, shared by all nodes [s3://CHANGE-ME/unlearn/ray_runs]
#   UNLEARN_ARGS         extra `schedule run` flags [--min-batch 100 --max-age 24 --config best.yaml --workers 2]
#   UNLEARN_ALERT_CMD    command run on escalation, given the message on stdin (e.g. a pager webhook) []
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RAY_ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"
UNLEARN_REPO="${UNLEARN_REPO:-$(cd "$here/../.." && pwd)}"
UNLEARN_LEDGER="${UNLEARN_LEDGER:-/var/lib/unlearn/ledger.sqlite}"
UNLEARN_STORAGE="${UNLEARN_STORAGE:-s3://CHANGE-ME/unlearn/ray_runs}"
UNLEARN_ARGS="${UNLEARN_ARGS:---min-batch 100 --max-age 24 --config best.yaml --workers 2}"

case "$UNLEARN_LEDGER" in
  /*) ;;
  *) echo "error: UNLEARN_LEDGER must be an absolute path on the head node, got $UNLEARN_LEDGER" >&2; exit 2 ;;
esac

cd "$UNLEARN_REPO" || exit 2
submission_id="unlearn-schedule-$(date -u +%Y%m%dT%H%M%SZ)"
echo "$(date -u +%FT%TZ) submitting $submission_id to $RAY_ADDRESS"

# `python -m orchestrator` (= `unlearn`) runs the code of the submitted checkout; its dependencies must be installed
# on the nodes (cluster.yaml setup_commands). UNLEARN_ARGS is a list of flags, hence unquoted.
# shellcheck disable=SC2086
ray job submit --address "$RAY_ADDRESS" --submission-id "$submission_id" --working-dir . \
  --runtime-env-json "{\"env_vars\": {\"UNLEARN_LEDGER\": \"$UNLEARN_LEDGER\"}}" \
  -- python -m orchestrator schedule run --storage "$UNLEARN_STORAGE" $UNLEARN_ARGS
rc=$?

if [ "$rc" -ne 0 ]; then
  # `ray job submit` exits 1 for any failed job; the entrypoint's own exit code is only in the job's log.
  log="$(ray job logs --address "$RAY_ADDRESS" "$submission_id" 2>/dev/null)"
  if grep -q "ESCALATION:" <<<"$log"; then
    rc=3
    if [ -n "${UNLEARN_ALERT_CMD:-}" ]; then
      grep "ESCALATION:" <<<"$log" | sh -c "$UNLEARN_ALERT_CMD"
    fi
  elif grep -q "holds the scheduler lock" <<<"$log"; then
    rc=75
  elif grep -q "failed, nothing promoted" <<<"$log"; then
    rc=1
  elif grep -q "^error: " <<<"$log"; then
    rc=2
  fi
fi
echo "$(date -u +%FT%TZ) $submission_id finished with exit code $rc"
exit "$rc"
