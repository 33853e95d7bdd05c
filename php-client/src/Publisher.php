<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\ApiException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;

/**
 * What an application needs from cometbox: publishing messages to clients
 * and minting their browsers' tokens. Client implements it; depend on this
 * interface to mock cometbox in your own tests.
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
     * Publishes many messages in one request: each is a Message or an array
     * ['to' => client id, 'data' => payload].
     *
     * @param array<int|string, Message|array{to: string, data: mixed}> $messages
     *
     * @return int[] the ids the node gave the messages, in order
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
}
