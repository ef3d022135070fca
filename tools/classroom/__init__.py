"""The classroom check's parts (tools/classroom_check.py): the deployment (`deploy`) and the
hub with each user's server (`hub`); package.json and requirements.txt pin what it installs."""
