"""sweeper's bottom floor: Optuna's RDB storage, the epoch table, budget and stop flag; storage.contract holds what both sides agree on."""
