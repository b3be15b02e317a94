-- Version 3: each server's last posture scan (JSON: scannedAt, findings, error).
ALTER TABLE servers ADD COLUMN posture TEXT;
