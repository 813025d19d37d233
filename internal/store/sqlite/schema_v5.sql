-- Schema version 5: children of one type under one parent (a group's servers, a server's
-- connections) are listed through an index of their own, not by walking every resource of the
-- type.

CREATE INDEX resources_parent_type ON resources (parent, type COLLATE NOCASE, key);
