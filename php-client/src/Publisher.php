<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\ApiException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;

/**
 * What an application needs from cometbox: publishing messages to clients
 * and groups, the groups' members, minting browsers' tokens, and the
 * server API (who is online, a client's queue, disconnecting a client). Client implements it; depend on
 * this interface to mock cometbox in your own tests.
 */
interface Publisher
{
    /**
     * Publishes one message. A string is sent as text; anything else (an
     * array, a stdClass, a JsonSerializable, a number, a bool, null) as JSON.
     *
     * @param string      $client         the recipient's client id
     * @param mixed       $data           the payload
     * @param string|null $idempotencyKey null: a random one
     *
     * @return int the id the node gave the message
     *
     * @throws InvalidArgumentException for bad input; nothing was sent
     * @throws ApiException             when a node refused the message (4xx); nothing was enqueued
     * @throws TransportException       when no node confirmed it; retry with the same idempotency key
     */
    public function send(string $client, $data, ?string $idempotencyKey = null): int;

    /**
     * Publishes one message to every member of a group: each gets a copy
     * in its own queue, acknowledged, capped and resumed as any message
     * to it; $except (the sender's own client, say) gets none. An unknown
     * group, or one with no member, is no error: the answer is 0.
     *
     * @param mixed       $data           the payload, as send() takes it
     * @param string|null $idempotencyKey null: a random one
     *
     * @return int how many members got a copy
     *
     * @throws InvalidArgumentException for bad input; nothing was sent
     * @throws ApiException             when a node refused the message (4xx); nothing was enqueued
     * @throws TransportException       when no node confirmed it; retry with the same idempotency key
     */
    public function sendToGroup(string $group, $data, ?string $except = null, ?string $idempotencyKey = null): int;

    /**
     * Publishes many messages in one request: each is a Message or an array
     * ['to' => client id, 'data' => payload], or ['group' => group name,
     * 'data' => payload] with an optional 'except' => client id.
     *
     * @param array<int|string, Message|array<string, mixed>> $messages
     *
     * @return int[] the ids the node gave the messages, in order; for a
     *               group message, how many members got a copy
     *
     * @throws InvalidArgumentException for bad input, naming the message; nothing was sent
     * @throws ApiException             when a node refused the batch (4xx); nothing was enqueued
     * @throws TransportException       when no node confirmed it; retry with the same idempotency key
     */
    public function sendMany(array $messages, ?string $idempotencyKey = null): array;

    /**
     * Starts a batch to fill with add() and publish with send().
     */
    public function batch(): Batch;

    /**
     * Mints a token that lets a browser poll $client's messages for
     * $ttlSeconds from now.
     *
     * @throws InvalidArgumentException for a bad client id or a lifetime under one second
     * @throws LogicException           when the client has no token secret
     */
    public function token(string $client, int $ttlSeconds): string;

    /**
     * Who of $clients is online: a node holds a poll or stream of it, or
     * held one less than the nodes' -presence-linger ago (GET
     * /api/presence; lists over 100 take several requests).
     *
     * @param string[] $clients client ids
     *
     * @return array<string, Presence> by client id, in the order asked (duplicates once)
     *
     * @throws InvalidArgumentException for a bad client id; nothing was sent
     * @throws ApiException             when a node refused the call (a wrong admin secret, presence off: 501)
     * @throws TransportException       when no node answered
     */
    public function presence(array $clients): array;

    /**
     * A client's queue (how many messages wait, their ids, the sequence's
     * epoch) and whether it is online (GET /api/clients/{client}).
     *
     * @throws InvalidArgumentException for a bad client id
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered
     */
    public function inspect(string $client): ClientInfo;

    /**
     * Deletes a client's queue and sequence (DELETE /api/clients/{client}):
     * its browser's next poll gets the reset signal, and the next message
     * starts a new sequence.
     *
     * @return bool whether there was a queue to delete
     *
     * @throws InvalidArgumentException for a bad client id
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered
     */
    public function deleteQueue(string $client): bool;

    /**
     * Ends every held poll and open stream of a client, on every node, at
     * once (POST /api/clients/{client}/disconnect). With $refuseTokens,
     * the client's tokens minted before now are refused from now on
     * (403 token_revoked), while tokens minted after work: the way to cut
     * off a banned user without rotating the token secret. Tokens carry
     * their expiry, not when they were minted, so give the lifetime you
     * mint this client's tokens for ($tokenTtlSeconds, as passed to
     * token()); null: the nodes' -token-max-ttl, which refuses every token
     * minted before now but also those minted for less than that until
     * then.
     *
     * @return int|null until when (Unix seconds) the client's tokens expiring by then are refused; null when none are
     *
     * @throws InvalidArgumentException for a bad client id or lifetime
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered; calling again is safe
     */
    public function disconnect(string $client, bool $refuseTokens = false, ?int $tokenTtlSeconds = null): ?int;

    /**
     * Adds clients to a group (POST /groups/{group}/members, a thousand
     * clients a request): group messages accepted from when it returns
     * reach them. A client already in the group stays as it is. A
     * membership lasts as long as the client's queue: a client that
     * neither polls nor streams, nor is sent to directly, for the nodes'
     * -queue-ttl leaves its groups.
     *
     * @param string[] $clients client ids
     *
     * @return int how many of them were not members before
     *
     * @throws InvalidArgumentException for a bad group name or client id; nothing was sent
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered; calling again is safe
     */
    public function join(string $group, array $clients): int;

    /**
     * Removes clients from a group (DELETE /groups/{group}/members, a
     * thousand a request): group messages accepted from when it returns
     * do not reach them.
     *
     * @param string[] $clients client ids
     *
     * @return int how many of them were members
     *
     * @throws InvalidArgumentException for a bad group name or client id; nothing was sent
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered; calling again is safe
     */
    public function leave(string $group, array $clients): int;

    /**
     * A page of a group's members, in order of their ids, after $after
     * (null: from the first), at most $limit (1 to 1,000). With $online,
     * the page also says which of them are online (GroupPage::online();
     * a node with presence off refuses it: 501).
     *
     * @throws InvalidArgumentException for a bad group name, client id or limit
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered
     */
    public function members(string $group, ?string $after = null, int $limit = 100, bool $online = false): GroupPage;

    /**
     * A page of a client's groups, in order of their names, after $after
     * (null: from the first), at most $limit (1 to 1,000).
     *
     * @throws InvalidArgumentException for a bad client id, group name or limit
     * @throws ApiException             when a node refused the call
     * @throws TransportException       when no node answered
     */
    public function groupsOf(string $client, ?string $after = null, int $limit = 100): GroupPage;
}
