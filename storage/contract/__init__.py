"""What both sides agree on without a database: training parameters, the study spec, samplers, data set names, worker options, user errors."""
