"""Launchers: worker fleets on schedulers. Slurm here (rendered sbatch scripts, squeue parsing);
Kubernetes is plain manifests in deploy/kubernetes/."""
