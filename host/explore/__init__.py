"""fixar.explore: hardware resource assignment after ConfuciuX (MICRO 2020).

A search over the generator's own parameters (fixar.explore.space) for
FIXAR's workload, scored by the project's cycle model and a resource model
of the U50's SLRs (fixar.explore.evaluate, cost, resources, synthfit), with
ConfuciuX's REINFORCE + GA and four baselines at equal evaluations
(fixar.explore.policy, search), compared over several seeds (fixar.explore.study).
``python -m fixar.explore``; docs/explore.md.
"""
