"""runtimed as a user service: the unit files (``units``), installing them for this
platform's service manager (``install``), and the health checks of `runt daemon doctor`
(``doctor``), plus the small file helpers `runt daemon` needs (``files``)."""
