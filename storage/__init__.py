"""sweeper's bottom floor: Optuna RDB storage, epoch-metrics table, the spec and parameter contract."""
