"""Qt parts of the module's widget, split from CMRSegModule.py along their seams."""
