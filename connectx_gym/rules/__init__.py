"""The rules of Connect-X on bitboards, for any rows x columns x inarow (``bitboard``), and the observation
planes a network sees (``planes``). Nothing here knows of search, networks or checkpoint files."""
