#pragma once
#include <mpi.h>
// OpenMPI's predefined handles are macros over the addresses of global structs: not importable.
MPI_Comm nebula_mpi_comm_world(void);
MPI_Comm nebula_mpi_comm_self(void);
MPI_Datatype nebula_mpi_float(void);
MPI_Datatype nebula_mpi_double(void);
MPI_Datatype nebula_mpi_byte(void);
MPI_Datatype nebula_mpi_int64(void);
MPI_Op nebula_mpi_sum(void);
MPI_Op nebula_mpi_max(void);
MPI_Errhandler nebula_mpi_errors_return(void);
void *nebula_mpi_in_place(void);
MPI_Status *nebula_mpi_status_ignore(void);
