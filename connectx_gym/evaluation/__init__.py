"""How strong an agent is: seeded games (``match``), played in parallel (``parallel``) for a planned
set of pairings (``plan``), summed up (``results``), rated (``ratings``) and reported (``report``,
``replay``); ``connectx_gym.evaluate`` is the command line on top."""
