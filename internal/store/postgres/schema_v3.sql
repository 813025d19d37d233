-- Schema version 3: the address at which other replicas reach a node's process directly (its
-- endpoint may be a load balancer's name shared by every replica).

ALTER TABLE nodes ADD COLUMN address text NOT NULL DEFAULT '';
