-- User ids wrapped: 'um' || lpad(n, 7, '0') cuts a number of 8 digits or more to its first 7,
-- so every number from 10,000,000 on got an id already given (10,000,000 and the nine after it
-- got um1000000, number 1,000,000's id): a duplicate key, and POST /movies failed from then on.
-- The id now keeps every digit past 7 (see 01-schema.sql). The ids given so far are all 'um'
-- and 7 digits, which the new check admits; checking them reads movie_user only, the API's own
-- small partition.
ALTER TABLE movie_user
    ALTER COLUMN id
        SET DEFAULT 'um' || to_char(nextval('movie_user_number'), 'FM9999999999990000000'),
    DROP CONSTRAINT movie_user_id_is_generated,
    ADD CONSTRAINT movie_user_id_is_generated CHECK (id ~ '^um([0-9]{7}|[1-9][0-9]{7,})$');
