"""`bench report`: comparison tables, statistics and plots regenerated from the MLflow records alone.

records.py (MLflow -> tidy DataFrame) -> tables.py (summaries, tests) with stats.py -> display.py (formatted
tables) and plots.py (figures) -> render.py (HTML, Markdown, LaTeX, CSV); build.py runs them in that order and
cli.py is the command. pandas, scipy, seaborn, matplotlib and mlflow are imported only inside this package.
"""
