<?php

declare(strict_types=1);

namespace Cometbox;

/**
 * Whether a client is online, as Client::presence() and Client::inspect()
 * report it: online while a node holds a poll or stream of it, and for
 * the nodes' -presence-linger after its last one ended. Times are Unix
 * milliseconds. Immutable.
 */
final class Presence
{
    private string $client;

    private bool $online;

    private ?int $since;

    private ?int $lastSeen;

    public function __construct(string $client, bool $online, ?int $since, ?int $lastSeen)
    {
        $this->client = $client;
        $this->online = $online;
        $this->since = $since;
        $this->lastSeen = $lastSeen;
    }

    /**
     * Reads one client's presence from a node's answer.
     *
     * @param array<string, mixed> $data
     *
     * @internal
     */
    public static function fromArray(array $data): self
    {
        return new self(
            (string) ($data['client'] ?? ''),
            ($data['online'] ?? false) === true,
            isset($data['since']) ? (int) $data['since'] : null,
            isset($data['last_seen']) ? (int) $data['last_seen'] : null
        );
    }

    public function client(): string
    {
        return $this->client;
    }

    public function isOnline(): bool
    {
        return $this->online;
    }

    /** When the client came online (Unix ms), while it is online; null otherwise. */
    public function since(): ?int
    {
        return $this->since;
    }

    /**
     * When the client's last poll or stream ended (Unix ms), while it is
     * offline; null while online, or when the nodes no longer know.
     */
    public function lastSeen(): ?int
    {
        return $this->lastSeen;
    }
}
