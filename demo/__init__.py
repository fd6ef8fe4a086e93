"""The demo: `make demo`'s launcher (python -m demo) and its switches page (/demo/), drifted
traffic and faults in a version. Only in demo mode; nothing below this app imports it."""
