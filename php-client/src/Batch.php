<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\ApiException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\TransportException;

/**
 * Messages gathered to be published in one request:
 *
 *     $ids = $client->batch()
 *         ->add('alice', 'hi')
 *         ->add('bob', ['x' => 1])
 *         ->send();
 *
 * Each message is checked as it is added, so a bad one fails at its own
 * add() call.
 */
final class Batch implements \Countable
{
    private Publisher $publisher;

    /** @var Message[] */
    private array $messages = [];

    private ?string $idempotencyKey = null;

    public function __construct(Publisher $publisher)
    {
        $this->publisher = $publisher;
    }

    /**
     * Adds a message: a string is text, anything else JSON (see Message::of()).
     *
     * @param mixed $data
     *
     * @throws InvalidArgumentException for a bad client id or payload
     */
    public function add(string $client, $data): self
    {
        try {
            $this->messages[] = Message::of($client, $data);
        } catch (InvalidArgumentException $e) {
            throw new InvalidArgumentException(sprintf('messages[%d]: %s', count($this->messages), $e->getMessage()), 0, $e);
        }

        return $this;
    }

    /**
     * Adds a message for every member of $group but $except (see
     * Message::toGroup()); its place in send()'s answer holds how many
     * members got a copy.
     *
     * @param mixed $data
     *
     * @throws InvalidArgumentException for a bad group name, client id or payload
     */
    public function addToGroup(string $group, $data, ?string $except = null): self
    {
        try {
            $this->messages[] = Message::toGroup($group, $data, $except);
        } catch (InvalidArgumentException $e) {
            throw new InvalidArgumentException(sprintf('messages[%d]: %s', count($this->messages), $e->getMessage()), 0, $e);
        }

        return $this;
    }

    /** Adds a message made with Message::text(), json(), of() or toGroup(). */
    public function addMessage(Message $message): self
    {
        $this->messages[] = $message;

        return $this;
    }

    /**
     * Sets the idempotency key: a batch sent again with the same key, for
     * instance by a job that is retried after a crash, is enqueued only
     * once (for the nodes' -idempotency-ttl, 10 minutes by default). Without
     * one, send() makes a random key, shared by its own retries only.
     *
     * @throws InvalidArgumentException for a key outside 1 to 128 characters of A-Z a-z 0-9 _ . : @ -
     */
    public function idempotencyKey(string $key): self
    {
        ClientId::check($key, 'idempotency key');
        $this->idempotencyKey = $key;

        return $this;
    }

    public function count(): int
    {
        return count($this->messages);
    }

    /** @return Message[] */
    public function messages(): array
    {
        return $this->messages;
    }

    /**
     * Publishes the batch in one request.
     *
     * @return int[] the ids the node gave the messages, in the order they were added;
     *               for a group message, how many members got a copy
     *
     * @throws InvalidArgumentException when the batch is empty or a message cannot be encoded
     * @throws ApiException             when a node refused the batch (4xx)
     * @throws TransportException       when no node confirmed it
     */
    public function send(): array
    {
        return $this->publisher->sendMany($this->messages, $this->idempotencyKey);
    }
}
