"""sweeper, control side: specs, studies, CLI, analysis. Never imports workers."""
