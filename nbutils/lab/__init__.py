"""The teaching lab: what a lab deploys and a learner never calls. The checks of the graded
exercises, exercise mode, the grader and the process that runs a student's answers, the
nbgrader exporter, and the notebooks' parameters and presets. Built on the core."""
