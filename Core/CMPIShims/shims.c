#include "CMPIShims.h"
MPI_Comm nebula_mpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Comm nebula_mpi_comm_self(void) { return MPI_COMM_SELF; }
MPI_Datatype nebula_mpi_float(void) { return MPI_FLOAT; }
MPI_Datatype nebula_mpi_double(void) { return MPI_DOUBLE; }
MPI_Datatype nebula_mpi_byte(void) { return MPI_BYTE; }
MPI_Datatype nebula_mpi_int64(void) { return MPI_INT64_T; }
MPI_Op nebula_mpi_sum(void) { return MPI_SUM; }
MPI_Op nebula_mpi_max(void) { return MPI_MAX; }
MPI_Errhandler nebula_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
void *nebula_mpi_in_place(void) { return MPI_IN_PLACE; }
MPI_Status *nebula_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
