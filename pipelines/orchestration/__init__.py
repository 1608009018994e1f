"""The only code that imports airflow: assets, the task wrapper and the DAG runner."""
