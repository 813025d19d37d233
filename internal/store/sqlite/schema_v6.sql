-- Schema version 6: the address at which other replicas reach a node's process directly (its
-- endpoint may be a load balancer's name shared by every replica).

ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';
