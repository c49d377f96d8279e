"""An effect model of programs: what a command does, read from what its program is.

`read_command(command, catalogue, home)` reads one simple command the shell analyzer found
(`runestone.shell`) against the catalogue of programs (`catalogue.builtin()`, data under
`runestone/policy/packs/programs/`), and says what it does: its effects, the paths it
touches and how, its URLs and its flags as the program reads them. Policy allows everyday
work by these effects instead of by lists of command lines.
"""

from runestone.effects.catalogue import Catalogue, CatalogueError, builtin
from runestone.effects.model import EFFECTS, Reading
from runestone.effects.reader import read_command

__all__ = ["EFFECTS", "Catalogue", "CatalogueError", "Reading", "builtin", "read_command"]
