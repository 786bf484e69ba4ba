"""The run machinery: the ``ocnet`` command line (cli) and its checks before PETSc reads it
(argv), run folders and their files (rundir), and launching ocnet under MPI (launch).  May
import every other ocnet package."""
