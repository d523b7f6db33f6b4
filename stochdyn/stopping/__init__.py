r"""Stopping rules: ``sd.simulate(..., until=RULE)`` stops each replica at the first step its rule holds.

>>> import stochdyn as sd
>>> until = sd.stopping.Region(coordinate=0, above=1.0) | sd.stopping.Region(coordinate=0, below=-1.5)

A rule is checked after every step (and on the initial state), not only at records. A replica
whose rule holds at step s is frozen from then on: its state and random stream are untouched, and
its later records repeat the record of step s (cumulative counters such as ``evaluations`` stop too).
The Dataset gains ``stopped`` (bool; False = censored at ``n_steps``), ``stop_step`` (−1 when
censored), ``stop_time`` (NaN when censored) and ``stop_rule`` (which part of an ``|`` combination
fired: 0, 1, …; −1 when censored; CF ``flag_values``/``flag_meanings``), and the attribute ``until``
(the rule as JSON). :func:`stochdyn.analysis.fixation_probability` and
:func:`stochdyn.analysis.hitting_times` read them.

Rules: :class:`Fixation`, :class:`Region`, :class:`Ball`, :class:`Basin`, :class:`EnergyBelow`, user
rules made with :func:`rule`, and ``rule_a | rule_b`` (:class:`AnyOf`).

**What a rule sees, per family.** Each replica's state as ``n`` rows of ``d`` numbers, and one scalar
``energy``:

============================== ============================================ =======================================
family                         state ``x`` (n × d)                          ``energy``
============================== ============================================ =======================================
Langevin (EM, LM, BAOAB)       the position (1 × d; not the velocity)       U(x)
SGD, Adam, SGLD on a landscape the parameters (1 × d)                       U(x)
same on a finite-sum problem   the parameters (1 × d)                       the full-batch loss (one pass over the
                                                                            data per step, only if the rule
                                                                            ``needs_energy``)
OnePlusOneES, CSAES, CMAES,    the parent / the mean of the search          the lowest U evaluated so far
OpenES                         distribution / θ (1 × d)                     (``best_energy``)
GeneticAlgorithm               the population (N × d)                       the lowest U in the population
WrightFisher, Moran            the population (N × d; genotypes: allele     the lowest U in the population
                               indices as floats)                           (genotypes: U = −log W)
============================== ============================================ =======================================

Geometric rules on a population (n > 1) apply to the population mean. For ``EnergyBelow(u)`` the
first step with energy < u is also the first step at which the best value so far is < u, so the
"current" and "best so far" readings give the same stopping time.

**Compiled form.** All rules share one C signature (:data:`RULE_SIG`): a single built-in rule is its
own small function, a combination or a user rule goes through one interpreter (each compiled on first
use and cached on disk); a rule's parameters and the structure of a combination travel in a float
program ``theta`` and in-process addresses in ``aux``, so new parameters, new combinations and user
rules never recompile a kernel. The kernel-side contract is in ``docs/design.md`` ("Stopping rules").
"""

from ._compiled import RULE_SIG
from .rules import (NO_RULE_ARGS, RULES, AnyOf, Ball, Basin, CompiledRule, EnergyBelow, Fixation, Region, Rule,
                    rule_from_dict)
from .user import rule

__all__ = ["Rule", "Fixation", "Region", "Ball", "Basin", "EnergyBelow", "AnyOf", "rule", "rule_from_dict",
           "CompiledRule", "RULE_SIG", "RULES", "NO_RULE_ARGS"]
