DROP TABLE backends;
