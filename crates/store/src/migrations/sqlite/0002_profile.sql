-- Version 2: each server's learned profile, as its agent last summarised it (JSON).
ALTER TABLE servers ADD COLUMN profile TEXT;
