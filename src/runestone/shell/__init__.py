"""Shell analysis: every simple command a bash string would run, and what stayed opaque."""
