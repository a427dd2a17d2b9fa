"""`evaluation` re-exports the statistics for notebooks, lazily."""

import subprocess
import sys


def test_statistics_are_importable_from_the_package():
    from evaluation import analyse_ratings, icc_table, reader_study_equivalence

    assert callable(analyse_ratings) and callable(icc_table) and callable(reader_study_equivalence)


def test_importing_the_package_does_not_load_statsmodels():
    code = "import sys, evaluation; print('statsmodels' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
