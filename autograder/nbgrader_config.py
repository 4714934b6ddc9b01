"""nbgrader settings of the course: one file for `make student`, `make validate` and grading.

Use it with nbgrader's own commands too, e.g.
    nbgrader generate_assignment 04_sparse_autoencoder --JupyterApp.config_file=autograder/nbgrader_config.py
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

HERE = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.root = os.environ.get("COURSE_GRADER_DIR", os.path.join(HERE, "course"))
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
c.GenerateAssignment.create_assignment = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Full-size cells may train for minutes; fast mode (on whenever nbgrader executes a
# notebook) keeps every cell far below this.
c.Execute.timeout = 900
