"""``python -m ebm_course.pretrained [NAME]``: print a model card as Markdown."""

import sys

from . import model_card_markdown

print(model_card_markdown(*sys.argv[1:2]), end="")
