# The settings every throwaway Slurm of the tests shares (tests/slurm/harness.sh: one node on
# loopback; tests/multihost/hosts.sh: one slurmd per simulated host), sourced by both: no
# systemd, no munge, no accounting, root everywhere, fast cleanup. Functions only.
# shellcheck shell=bash

# slurm_common_conf DIR: prints those slurm.conf lines, with the controller's state, pid and log
# files under DIR. FirstJobId is random so that two clusters at once (ctest -j) never share a job
# id, which slurmstepd and the PMIx plugin use in their file names.
slurm_common_conf() {
  cat <<EOF
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
StateSaveLocation=$1/state
SlurmctldPidFile=$1/slurmctld.pid
SlurmctldLogFile=$1/slurmctld.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
FirstJobId=$((1000 + RANDOM * 30))
ReturnToService=2
KillWait=5
MinJobAge=600
EOF
}
