"""The adversarial pass's parts (``benchmarks/adversarial.py`` runs them): ``common`` (secrets,
verdicts, the command runner, ``latmap serve``), ``hostile`` (a misbehaving Prometheus,
scrape target and Grafana), and one module per part: ``cli``, ``answers``, ``outputs``,
``spool``, ``serve``, ``sigkill``."""
