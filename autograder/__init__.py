"""The course autograder: release, grade and self-check, on top of nbgrader."""
