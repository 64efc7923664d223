"""What the benchmarks and the soak share: the stack they start (``stack``), HTTP load and probes
(``web``, ``loadgen``), the visitors and requests they send (``traffic``), the writer's throughput
(``writer``) and the rendering of ``docs/benchmarks.md`` (``report``).

Run from the checkout as modules (``python -m scripts.bench``), so that ``scripts`` and the
product's packages import without touching ``sys.path``.
"""
