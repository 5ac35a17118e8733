"""sweeper's bottom floor: Optuna's RDB storage, epoch table, budget, stop flag; contract: the shared terms."""
