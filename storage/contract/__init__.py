"""What both sides agree on without a database: params, spec, samplers, data, options, outcomes, errors."""
