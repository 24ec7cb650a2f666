-- Run once by the postgres image on an empty volume: MLflow's registry gets a database of its
-- own (its Alembic version table would collide with ChampiPy's in one database).
CREATE DATABASE mlflow OWNER champipy;
