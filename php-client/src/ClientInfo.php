<?php

declare(strict_types=1);

namespace Cometbox;

/**
 * What Client::inspect() shows of a client: its queue, and whether it is
 * online. Immutable.
 */
final class ClientInfo
{
    private string $client;

    private string $epoch;

    private int $length;

    private int $firstId;

    private int $lastId;

    private ?Presence $presence;

    public function __construct(string $client, string $epoch, int $length, int $firstId, int $lastId, ?Presence $presence)
    {
        $this->client = $client;
        $this->epoch = $epoch;
        $this->length = $length;
        $this->firstId = $firstId;
        $this->lastId = $lastId;
        $this->presence = $presence;
    }

    /**
     * Reads a node's answer to GET /api/clients/{client}.
     *
     * @param array<string, mixed> $data
     *
     * @internal
     */
    public static function fromArray(array $data): self
    {
        return new self(
            (string) ($data['client'] ?? ''),
            (string) ($data['epoch'] ?? ''),
            (int) ($data['length'] ?? 0),
            (int) ($data['first_id'] ?? 0),
            (int) ($data['last_id'] ?? 0),
            array_key_exists('online', $data) ? Presence::fromArray($data) : null
        );
    }

    public function client(): string
    {
        return $this->client;
    }

    /** The client's sequence; empty when it has none (nothing published, or expired or deleted). */
    public function epoch(): string
    {
        return $this->epoch;
    }

    /** How many messages wait for the client. */
    public function length(): int
    {
        return $this->length;
    }

    /** The id of the oldest message waiting; 0 when none is. */
    public function firstId(): int
    {
        return $this->firstId;
    }

    /** The last id given in the sequence (the newest message's, even once acknowledged). */
    public function lastId(): int
    {
        return $this->lastId;
    }

    /** Whether the client is online; null when the node has presence off. */
    public function presence(): ?Presence
    {
        return $this->presence;
    }
}
