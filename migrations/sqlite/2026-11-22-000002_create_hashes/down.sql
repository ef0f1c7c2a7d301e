DROP TABLE hashes;
