"""Processing graphs of a console: the pruning search (``prune``), graph prediction from evidence
(``evidence``, ``predictor``, ``case_set``), audibility, cases with known graphs and recovery metrics."""
