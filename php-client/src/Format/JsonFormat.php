<?php

declare(strict_types=1);

namespace Cometbox\Format;

use Cometbox\Message;

/**
 * The JSON publish format:
 *
 *     {"messages":[{"to":"alice","data":"Hello"},{"to":"bob","data":{"x":1}},
 *                  {"group":"room:42","except":"alice","data":"Hi all"}]}
 *
 * Unlike XML it can carry any Unicode text, control characters included.
 */
final class JsonFormat implements Format
{
    public function contentType(): string
    {
        return 'application/json';
    }

    public function encode(array $messages): string
    {
        $items = [];
        foreach ($messages as $message) {
            $data = $message->isJson() ? $message->payload() : json_encode($message->payload(), Message::JSON_FLAGS);
            if ($message->isGroup()) {
                $head = '{"group":' . json_encode($message->group(), Message::JSON_FLAGS)
                    . ($message->except() !== '' ? ',"except":' . json_encode($message->except(), Message::JSON_FLAGS) : '');
            } else {
                $head = '{"to":' . json_encode($message->to(), Message::JSON_FLAGS);
            }
            $items[] = $head . ',"data":' . $data . '}';
        }

        return '{"messages":[' . implode(',', $items) . ']}';
    }

    public function receipts(string $body, array $messages): ?array
    {
        $doc = json_decode($body, true);
        if (!is_array($doc) || !isset($doc['queued']) || !is_array($doc['queued']) || count($doc['queued']) !== count($messages)) {
            return null;
        }
        $ids = [];
        foreach (array_values($messages) as $i => $message) {
            $receipt = $doc['queued'][$i] ?? null;
            if ($message->isGroup()) { // how many members got a copy
                if (!is_array($receipt) || ($receipt['group'] ?? null) !== $message->group() || !is_int($receipt['members'] ?? null) || $receipt['members'] < 0) {
                    return null;
                }
                $ids[] = $receipt['members'];
                continue;
            }
            if (!is_array($receipt) || ($receipt['to'] ?? null) !== $message->to() || !is_int($receipt['id'] ?? null) || $receipt['id'] < 1) {
                return null;
            }
            $ids[] = $receipt['id'];
        }

        return $ids;
    }
}
