"""Code that runs on workers: data, models, losses, loops and attacks. Never imports Ray."""
