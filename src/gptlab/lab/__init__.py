"""The lab: the post's claims as seeded, equal-budget experiments, with computed verdicts.

An ablation file (:mod:`gptlab.lab.spec`) names a baseline, arms as config overrides and the
claims they test; :mod:`gptlab.lab.runner` trains every arm × paired seed on one shared pack
and evaluation set; :mod:`gptlab.lab.verdict` judges each claim from the per-seed differences;
:mod:`gptlab.lab.report` draws the page; :mod:`gptlab.lab.command` is `gptlab ablate`.
"""
