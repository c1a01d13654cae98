"""The environments: ``ConnectXEnv`` (``connectx``), and the vectorized ``ChunkedVecEnv`` (``vec``)
whose workers (``workers``) each step a chunk of envs (``chunk``) per message, in this process,
in subprocesses or as Ray actors."""
