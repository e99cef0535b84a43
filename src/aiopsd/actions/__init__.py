"""Things aiopsd does to the world: Ansible playbooks, retraining, silences, notifications."""
