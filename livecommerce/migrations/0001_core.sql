-- Core catalogue: hosts, users, goods, live rooms and the goods shown in each room.
-- Money is integer fen (1/100 CNY) everywhere; no float money.

CREATE TABLE hosts (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    openid      text NOT NULL UNIQUE,
    unionid     text,
    nickname    text NOT NULL DEFAULT '',
    avatar_url  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_unionid_idx ON users (unionid) WHERE unionid IS NOT NULL;

CREATE TABLE goods (
    id           bigserial PRIMARY KEY,
    host_id      bigint REFERENCES hosts (id),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    images       text[] NOT NULL DEFAULT '{}',
    price_fen    bigint NOT NULL CHECK (price_fen >= 0),
    stock        integer NOT NULL CHECK (stock >= 0),
    category     text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'on_sale' CHECK (status IN ('draft', 'on_sale', 'off_sale')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE live_rooms (
    id                bigserial PRIMARY KEY,
    host_id           bigint NOT NULL REFERENCES hosts (id),
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    cover_url         text NOT NULL DEFAULT '',
    stream_url        text NOT NULL DEFAULT '',
    planned_start_at  timestamptz,
    state             text NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'live', 'ended')),
    started_at        timestamptz,
    ended_at          timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX live_rooms_host_idx ON live_rooms (host_id);

CREATE TABLE room_goods (
    room_id   bigint NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    goods_id  bigint NOT NULL REFERENCES goods (id),
    position  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, goods_id)
);
CREATE INDEX room_goods_goods_idx ON room_goods (goods_id);
