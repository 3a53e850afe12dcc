"""The advisor: "prompt a large LLM or fine-tune a smaller model?" as a rule table, plus a
bake-off that measures both on the user's own labelled data."""
from gptlab.advise.answers import Answers, answers_from_dict, load_answers
from gptlab.advise.engine import Advice, advise
from gptlab.advise.rules import RULES, VERDICTS, Rule

__all__ = ["Advice", "Answers", "RULES", "Rule", "VERDICTS", "advise", "answers_from_dict", "load_answers"]
