"""Pure core: no I/O, no aiohttp, no database, no clock (now is passed in)."""
