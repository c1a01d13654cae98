"""The single-file Kaggle submission: the agent's code, building the file from a checkpoint, checking it
through Kaggle.

The submission imports only the standard library and numpy. It embeds the policy's weights (a
base64 compressed ``.npz``, decoded once at import) and carries the package's own code, verbatim:
the agent (:mod:`.agent`), the forward pass, the PUCT search, the exact alpha-beta proof and the
opening book's numbering. It ends with ``agent(observation, configuration)``: Kaggle plays the
last callable of the file. The agent plays the greedy policy over the legal columns; with a search
budget it plays the book's perfect move in a book position, else takes an immediate win or blocks
an immediate loss, proves what it can with the alpha-beta proof, and searches the rest of its
budget with PUCT. :mod:`.build` renders and writes the file, :mod:`.check` plays it through
``kaggle_environments``.
"""
