"""The environments: ``ConnectXEnv`` (``connectx``) with its observation planes (``planes``), and the
vectorized ``ChunkedVecEnv`` (``vec``) whose workers (``workers``) each step a chunk of envs
(``chunk``) per message, in this process, in subprocesses or as Ray actors."""
