-- Seeds (`zest seed`) announce as role 'seed', the wire Handshake's vocabulary.
ALTER TABLE peers DROP CONSTRAINT IF EXISTS peers_role_check;
ALTER TABLE peers ADD CONSTRAINT peers_role_check CHECK (role IN ('edge', 'client', 'seed'));
